//! meetings-signalling's gRPC surface: unpack, call one `app::` function, map the result.

use std::sync::Arc;

use mas_kit::RequestContext;
use mas_kit::idempotency;
use mas_kit::proto::mas::meetings::v1 as pb;
use mas_kit::proto::mas::meetings::v1::meetings_server::Meetings;
use tonic::{Request, Response, Status};

use crate::app::{App, bookings, cleanup, meetings, mentors, recordings, slots};

pub struct MeetingsGrpc {
    pub app: Arc<App>,
    pub scheduler: Arc<mas_bus::Scheduler>,
}

type Res<T> = Result<Response<T>, Status>;

fn ok<T>(v: T) -> Res<T> {
    Ok(Response::new(v))
}

#[tonic::async_trait]
impl Meetings for MeetingsGrpc {
    async fn put_my_profile(&self, req: Request<pb::PutMyProfileRequest>) -> Res<pb::Mentor> {
        let ctx = RequestContext::of(&req)?;
        let user = ctx.user()?;
        ok(mentors::put(&self.app, &user.platform, &user.subject, req.into_inner()).await?)
    }

    async fn get_mentor(&self, req: Request<pb::GetMentorRequest>) -> Res<pb::Mentor> {
        let ctx = RequestContext::of(&req)?;
        ok(mentors::get(&self.app, ctx.user()?, &req.get_ref().user_id).await?)
    }

    async fn list_mentors(
        &self,
        req: Request<pb::ListMentorsRequest>,
    ) -> Res<pb::ListMentorsResponse> {
        let ctx = RequestContext::of(&req)?;
        let platform = ctx.user()?.platform.clone();
        ok(mentors::list(&self.app, &platform, req.into_inner()).await?)
    }

    async fn create_slots(
        &self,
        req: Request<pb::CreateSlotsRequest>,
    ) -> Res<pb::CreateSlotsResponse> {
        let ctx = RequestContext::of(&req)?;
        let user = ctx.user()?;
        ok(slots::create(&self.app, &user.platform, &user.subject, req.into_inner()).await?)
    }

    async fn list_slots(&self, req: Request<pb::ListSlotsRequest>) -> Res<pb::ListSlotsResponse> {
        let ctx = RequestContext::of(&req)?;
        let platform = ctx.user()?.platform.clone();
        ok(slots::list(&self.app, &platform, req.into_inner()).await?)
    }

    async fn delete_slot(
        &self,
        req: Request<pb::DeleteSlotRequest>,
    ) -> Res<pb::DeleteSlotResponse> {
        let ctx = RequestContext::of(&req)?;
        let user = ctx.user()?;
        slots::delete(
            &self.app,
            &user.platform,
            &user.subject,
            &req.get_ref().slot_id,
        )
        .await?;
        ok(pb::DeleteSlotResponse {})
    }

    async fn book_slot(&self, req: Request<pb::BookSlotRequest>) -> Res<pb::Booking> {
        let ctx = RequestContext::of(&req)?;
        let user = ctx.user()?;
        let key = idempotency::key(&req)?;
        let caller = format!("{}/{}", user.platform, user.subject);
        let r = req.get_ref();
        ok(
            idempotency::once(&self.app.db, "BookSlot", &caller, key.as_deref(), r, || {
                bookings::book(&self.app, &user.platform, &user.subject, &r.slot_id)
            })
            .await?,
        )
    }

    async fn list_my_bookings(
        &self,
        req: Request<pb::ListMyBookingsRequest>,
    ) -> Res<pb::ListMyBookingsResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(bookings::list_mine(&self.app, ctx.user()?, req.into_inner()).await?)
    }

    async fn cancel_booking(&self, req: Request<pb::CancelBookingRequest>) -> Res<pb::Booking> {
        let ctx = RequestContext::of(&req)?;
        ok(bookings::cancel(&self.app, ctx.user()?, req.into_inner()).await?)
    }

    async fn reschedule_booking(
        &self,
        req: Request<pb::RescheduleBookingRequest>,
    ) -> Res<pb::Booking> {
        let ctx = RequestContext::of(&req)?;
        ok(bookings::reschedule(&self.app, ctx.user()?, req.into_inner()).await?)
    }

    async fn get_meeting(&self, req: Request<pb::GetMeetingRequest>) -> Res<pb::Meeting> {
        let ctx = RequestContext::of(&req)?;
        let (m, _) = meetings::find_for(&self.app, ctx.user()?, &req.get_ref().meeting_id).await?;
        ok(meetings::to_pb(&self.app, m))
    }

    async fn join_meeting(
        &self,
        req: Request<pb::JoinMeetingRequest>,
    ) -> Res<pb::JoinMeetingResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(meetings::join(&self.app, ctx.user()?, &req.get_ref().meeting_id).await?)
    }

    async fn end_meeting(&self, req: Request<pb::EndMeetingRequest>) -> Res<pb::Meeting> {
        let ctx = RequestContext::of(&req)?;
        let m = meetings::end(&self.app, ctx.user()?, &req.get_ref().meeting_id).await?;
        ok(meetings::to_pb(&self.app, m))
    }

    async fn mark_no_show(&self, req: Request<pb::MarkNoShowRequest>) -> Res<pb::Meeting> {
        let ctx = RequestContext::of(&req)?;
        let m = meetings::no_show(&self.app, ctx.user()?, &req.get_ref().meeting_id).await?;
        ok(meetings::to_pb(&self.app, m))
    }

    async fn list_meeting_logs(
        &self,
        req: Request<pb::ListMeetingLogsRequest>,
    ) -> Res<pb::ListMeetingLogsResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(meetings::logs(&self.app, ctx.user()?, &req.get_ref().meeting_id).await?)
    }

    async fn create_recording_upload(
        &self,
        req: Request<pb::CreateRecordingUploadRequest>,
    ) -> Res<pb::RecordingUpload> {
        let ctx = RequestContext::of(&req)?;
        ok(recordings::create_upload(&self.app, ctx.user()?, req.into_inner()).await?)
    }

    async fn complete_recording(
        &self,
        req: Request<pb::CompleteRecordingRequest>,
    ) -> Res<pb::Recording> {
        let ctx = RequestContext::of(&req)?;
        ok(recordings::complete(&self.app, ctx.user()?, &req.get_ref().recording_id).await?)
    }

    async fn list_recordings(
        &self,
        req: Request<pb::ListRecordingsRequest>,
    ) -> Res<pb::ListRecordingsResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(recordings::list(&self.app, ctx.user()?, &req.get_ref().meeting_id).await?)
    }

    async fn get_recording_playback(
        &self,
        req: Request<pb::GetRecordingPlaybackRequest>,
    ) -> Res<pb::RecordingPlayback> {
        let ctx = RequestContext::of(&req)?;
        ok(recordings::playback(&self.app, ctx.user()?, &req.get_ref().recording_id).await?)
    }

    async fn download_recording(
        &self,
        req: Request<pb::DownloadRecordingRequest>,
    ) -> Res<mas_kit::proto::mas::Redirect> {
        let ctx = RequestContext::of(&req)?;
        let playback =
            recordings::playback(&self.app, ctx.user()?, &req.get_ref().recording_id).await?;
        ok(mas_kit::proto::mas::Redirect {
            location: playback.url,
        })
    }

    async fn cleanup_statistics(
        &self,
        req: Request<pb::CleanupStatisticsRequest>,
    ) -> Res<pb::SlotStatistics> {
        let ctx = RequestContext::of(&req)?;
        ok(cleanup::statistics(&self.app, &ctx.user()?.platform).await?)
    }

    async fn cleanup_mentor_statistics(
        &self,
        req: Request<pb::CleanupMentorStatisticsRequest>,
    ) -> Res<pb::CleanupMentorStatisticsResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(cleanup::mentor_statistics(&self.app, &ctx.user()?.platform).await?)
    }

    async fn cleanup_list_slots(
        &self,
        req: Request<pb::CleanupListSlotsRequest>,
    ) -> Res<pb::ListSlotsResponse> {
        let ctx = RequestContext::of(&req)?;
        let platform = ctx.user()?.platform.clone();
        ok(cleanup::list(&self.app, &platform, req.into_inner()).await?)
    }

    async fn cleanup_run_now(
        &self,
        req: Request<pb::CleanupRunNowRequest>,
    ) -> Res<pb::CleanupRunNowResponse> {
        let ctx = RequestContext::of(&req)?;
        let deleted = cleanup::run(&self.app, Some(&ctx.user()?.platform)).await?;
        ok(pb::CleanupRunNowResponse {
            deleted: deleted as i64,
        })
    }

    async fn cleanup_schedule(
        &self,
        req: Request<pb::CleanupScheduleRequest>,
    ) -> Res<pb::CleanupScheduleResponse> {
        RequestContext::of(&req)?.user()?;
        let s = self.scheduler.clone();
        s.trigger_now(cleanup::SCHEDULE_ID)
            .await
            .map_err(|e| Status::internal(format!("schedule: {e}")))?;
        let next = s
            .get(cleanup::SCHEDULE_ID)
            .await
            .map_err(|e| Status::internal(format!("schedule: {e}")))?;
        ok(pb::CleanupScheduleResponse {
            next_run: Some(mas_kit::timestamp(next.next_run)),
        })
    }
}
