from django import forms
from django.contrib import admin, messages

from .models import Survey, SurveyResponse
from .services import SurveyError, survey_definition_errors, survey_save_definition


class SurveyForm(forms.ModelForm):
    class Meta:
        model = Survey
        fields = ("name", "title", "questions", "is_active")
        help_texts = {
            "questions": 'A list of questions: {"id": "difficulty", "text": "How hard was the task?", "type": '
                         '"likert" | "choice" | "number" | "text", "choices": [...], "required": true, "help": "", '
                         '"min": 0, "max": 100}. Saving a version that already has answers creates a new version.',
        }

    def clean_questions(self):
        questions = self.cleaned_data["questions"]
        errors = survey_definition_errors(questions)
        if errors:
            raise forms.ValidationError(errors)
        return questions


@admin.register(Survey)
class SurveyAdmin(admin.ModelAdmin):
    form = SurveyForm
    list_display = ("name", "version", "title", "is_active", "answers", "created")
    list_filter = ("is_active", "name")
    readonly_fields = ("version", "created")

    @admin.display(description="Answers")
    def answers(self, obj):
        return obj.responses.exclude(submitted_at=None).count()

    def save_model(self, request, obj, form, change):
        # Versions with answers are never edited in place (see survey_save_definition).
        if change:
            original = Survey.objects.get(pk=obj.pk)
        else:
            original = Survey(name=obj.name)
        try:
            saved, new = survey_save_definition(survey=original, title=obj.title, questions=obj.questions,
                                                is_active=obj.is_active, actor=request.user)
        except SurveyError as exc:  # pragma: no cover - the form validated already
            self.message_user(request, str(exc), messages.ERROR)
            return
        obj.pk, obj.version = saved.pk, saved.version
        if change and new:
            self.message_user(request, f"That version already has answers, so your edit was saved as version {saved.version}.",
                              messages.WARNING)


@admin.register(SurveyResponse)
class SurveyResponseAdmin(admin.ModelAdmin):
    list_display = ("attempt", "survey", "respondent", "submitted_at")
    list_filter = ("survey",)
    readonly_fields = ("attempt", "survey", "respondent", "answers", "submitted_at", "updated")

    def has_add_permission(self, request):
        return False
