//! lms's gRPC surface: unpack, call one `app::` function, map the result.

use std::sync::Arc;

use mas_kit::RequestContext;
use mas_kit::proto::mas::lms::v1 as pb;
use mas_kit::proto::mas::lms::v1::lms_server::Lms;
use tonic::{Request, Response, Status};

use crate::app::{
    self, App, Caller, batches, candidates, courses, dashboard, enrollments, quizzes, risk, sync,
};

pub struct LmsGrpc {
    pub app: Arc<App>,
}

type Res<T> = Result<Response<T>, Status>;

fn ok<T>(v: T) -> Res<T> {
    Ok(Response::new(v))
}

#[tonic::async_trait]
impl Lms for LmsGrpc {
    async fn list_courses(
        &self,
        req: Request<pb::ListCoursesRequest>,
    ) -> Res<pb::ListCoursesResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(courses::list_public(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn get_course(&self, req: Request<pb::GetCourseRequest>) -> Res<pb::Course> {
        let ctx = RequestContext::of(&req)?;
        ok(courses::get_public(&self.app, ctx.platform()?, &req.get_ref().id).await?)
    }

    async fn enroll(&self, req: Request<pb::EnrollRequest>) -> Res<pb::Enrollment> {
        let ctx = RequestContext::of(&req)?;
        let user = &ctx.user()?.subject;
        ok(
            enrollments::enroll_free(&self.app, ctx.platform()?, user, &req.get_ref().course_id)
                .await?,
        )
    }

    async fn list_my_courses(
        &self,
        req: Request<pb::ListMyCoursesRequest>,
    ) -> Res<pb::ListMyCoursesResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(enrollments::my_courses(&self.app, ctx.platform()?, &ctx.user()?.subject).await?)
    }

    async fn get_course_content(
        &self,
        req: Request<pb::GetCourseContentRequest>,
    ) -> Res<pb::CourseContent> {
        let ctx = RequestContext::of(&req)?;
        ok(enrollments::content(&self.app, &Caller::of(&ctx)?, &req.get_ref().course_id).await?)
    }

    async fn complete_lesson(
        &self,
        req: Request<pb::CompleteLessonRequest>,
    ) -> Res<pb::Enrollment> {
        let ctx = RequestContext::of(&req)?;
        ok(enrollments::complete_lesson(&self.app, &Caller::of(&ctx)?, req.get_ref()).await?)
    }

    async fn join_class(&self, req: Request<pb::JoinClassRequest>) -> Res<pb::Attendance> {
        let ctx = RequestContext::of(&req)?;
        ok(enrollments::join_class(&self.app, &Caller::of(&ctx)?, &req.get_ref().class_id).await?)
    }

    async fn start_attempt(&self, req: Request<pb::StartAttemptRequest>) -> Res<pb::Attempt> {
        let ctx = RequestContext::of(&req)?;
        ok(quizzes::start_attempt(&self.app, &Caller::of(&ctx)?, &req.get_ref().quiz_id).await?)
    }

    async fn get_attempt(&self, req: Request<pb::GetAttemptRequest>) -> Res<pb::Attempt> {
        let ctx = RequestContext::of(&req)?;
        ok(quizzes::get_attempt(&self.app, &Caller::of(&ctx)?, &req.get_ref().id).await?)
    }

    async fn submit_attempt(&self, req: Request<pb::SubmitAttemptRequest>) -> Res<pb::Attempt> {
        let ctx = RequestContext::of(&req)?;
        ok(quizzes::submit(&self.app, &Caller::of(&ctx)?, req.get_ref()).await?)
    }

    async fn list_admin_courses(
        &self,
        req: Request<pb::ListAdminCoursesRequest>,
    ) -> Res<pb::ListCoursesResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(courses::list_admin(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn create_course(&self, req: Request<pb::CreateCourseRequest>) -> Res<pb::Course> {
        let ctx = RequestContext::of(&req)?;
        ok(courses::create(&self.app, ctx.platform()?, &app::actor(&ctx), req.get_ref()).await?)
    }

    async fn get_admin_course(&self, req: Request<pb::GetCourseRequest>) -> Res<pb::Course> {
        let ctx = RequestContext::of(&req)?;
        ok(courses::get_admin(&self.app, ctx.platform()?, &req.get_ref().id).await?)
    }

    async fn update_course(&self, req: Request<pb::UpdateCourseRequest>) -> Res<pb::Course> {
        let ctx = RequestContext::of(&req)?;
        ok(courses::update(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn add_module(&self, req: Request<pb::AddModuleRequest>) -> Res<pb::Course> {
        let ctx = RequestContext::of(&req)?;
        ok(courses::add_module(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn schedule_class(&self, req: Request<pb::ScheduleClassRequest>) -> Res<pb::LiveClass> {
        let ctx = RequestContext::of(&req)?;
        ok(
            courses::schedule_class(&self.app, ctx.platform()?, &app::actor(&ctx), req.get_ref())
                .await?,
        )
    }

    async fn enroll_student(&self, req: Request<pb::EnrollStudentRequest>) -> Res<pb::Enrollment> {
        let ctx = RequestContext::of(&req)?;
        ok(enrollments::enroll_student(
            &self.app,
            ctx.platform()?,
            &app::actor(&ctx),
            req.get_ref(),
        )
        .await?)
    }

    async fn list_enrollments(
        &self,
        req: Request<pb::ListEnrollmentsRequest>,
    ) -> Res<pb::ListEnrollmentsResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(enrollments::list(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn create_question(&self, req: Request<pb::CreateQuestionRequest>) -> Res<pb::Question> {
        let ctx = RequestContext::of(&req)?;
        ok(
            quizzes::create_question(&self.app, ctx.platform()?, &app::actor(&ctx), req.get_ref())
                .await?,
        )
    }

    async fn list_questions(
        &self,
        req: Request<pb::ListQuestionsRequest>,
    ) -> Res<pb::ListQuestionsResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(quizzes::list_questions(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn create_quiz(&self, req: Request<pb::CreateQuizRequest>) -> Res<pb::Quiz> {
        let ctx = RequestContext::of(&req)?;
        ok(
            quizzes::create_quiz(&self.app, ctx.platform()?, &app::actor(&ctx), req.get_ref())
                .await?,
        )
    }

    async fn list_quizzes(
        &self,
        req: Request<pb::ListQuizzesRequest>,
    ) -> Res<pb::ListQuizzesResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(quizzes::list_quizzes(&self.app, &Caller::of(&ctx)?, &req.get_ref().course_id).await?)
    }

    async fn create_candidate_attempt(
        &self,
        req: Request<pb::CreateCandidateAttemptRequest>,
    ) -> Res<pb::CandidateLink> {
        let ctx = RequestContext::of(&req)?;
        ok(
            candidates::create(&self.app, ctx.platform()?, &app::actor(&ctx), req.get_ref())
                .await?,
        )
    }

    async fn open_candidate_quiz(
        &self,
        req: Request<pb::OpenCandidateQuizRequest>,
    ) -> Res<pb::Attempt> {
        let ctx = RequestContext::of(&req)?;
        ok(candidates::open(&self.app, ctx.platform()?, &req.get_ref().token).await?)
    }

    async fn submit_candidate_quiz(
        &self,
        req: Request<pb::SubmitCandidateQuizRequest>,
    ) -> Res<pb::Attempt> {
        let ctx = RequestContext::of(&req)?;
        ok(candidates::submit(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn create_batch(&self, req: Request<pb::CreateBatchRequest>) -> Res<pb::Batch> {
        let ctx = RequestContext::of(&req)?;
        ok(batches::create(&self.app, ctx.platform()?, &app::actor(&ctx), req.get_ref()).await?)
    }

    async fn add_batch_students(
        &self,
        req: Request<pb::AddBatchStudentsRequest>,
    ) -> Res<pb::Batch> {
        let ctx = RequestContext::of(&req)?;
        ok(batches::add_students(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn list_my_batches(
        &self,
        req: Request<pb::ListMyBatchesRequest>,
    ) -> Res<pb::ListBatchesResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(batches::list_mine(&self.app, &Caller::of(&ctx)?).await?)
    }

    async fn get_batch(&self, req: Request<pb::GetBatchRequest>) -> Res<pb::Batch> {
        let ctx = RequestContext::of(&req)?;
        ok(batches::get(&self.app, &Caller::of(&ctx)?, &req.get_ref().batch_id).await?)
    }

    async fn mark_attendance(
        &self,
        req: Request<pb::MarkAttendanceRequest>,
    ) -> Res<pb::Attendance> {
        let ctx = RequestContext::of(&req)?;
        ok(batches::mark_attendance(&self.app, &Caller::of(&ctx)?, req.get_ref()).await?)
    }

    async fn get_student_dashboard(
        &self,
        req: Request<pb::GetStudentDashboardRequest>,
    ) -> Res<pb::StudentDashboard> {
        let ctx = RequestContext::of(&req)?;
        ok(dashboard::get(&self.app, &Caller::of(&ctx)?).await?)
    }

    async fn upsert_learning(
        &self,
        req: Request<pb::UpsertLearningRequest>,
    ) -> Res<pb::UpsertLearningResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(sync::upsert(&self.app, ctx.platform()?, &app::actor(&ctx), req.get_ref()).await?)
    }

    async fn list_at_risk_students(
        &self,
        req: Request<pb::ListAtRiskStudentsRequest>,
    ) -> Res<pb::ListAtRiskStudentsResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(risk::at_risk(&self.app, &Caller::of(&ctx)?, req.get_ref()).await?)
    }
}
